"""What every Switchboard service process runs on: the server and the client runtime.

Example::

    from services.runtime import NotFound, ServerConfig, Service, serve
"""

from __future__ import annotations

from services.runtime.agent import RegistrationAgent
from services.runtime.client._client import Client, ClientConfig, Connection
from services.runtime.client._discovery import RegistryConfig, add_registry_arguments
from services.runtime.client._retry import (
    MethodSpec,
    RetryPolicy,
    RetrySettings,
    policy_for,
    retry_table,
)
from services.runtime.client._sync import SyncClient
from services.runtime.client._typed import RegistryClient, TypedClient, update_mask
from services.runtime.config import (
    ConfigError,
    ServerConfig,
    add_server_arguments,
    parse_server_config,
)
from services.runtime.context import (
    current_deadline,
    current_request_id,
    remaining_time,
    request_scope,
)
from services.runtime.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SwitchboardError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    from_rpc_error,
)
from services.runtime.server._build import (
    BindError,
    HealthServicer,
    Service,
    create_server,
    set_health_status,
)
from services.runtime.server._http import HttpRoute, current_http_address
from services.runtime.server._lifecycle import Lifecycle, configure_logging, run_main, serve
from services.runtime.server._main import (
    ListeningHook,
    ServiceSetup,
    run_service,
    service_parser,
)

__all__ = [
    "Aborted",
    "AlreadyExists",
    "BindError",
    "Cancelled",
    "ConfigError",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "HealthServicer",
    "HttpRoute",
    "Internal",
    "InvalidArgument",
    "Lifecycle",
    "ListeningHook",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "ServerConfig",
    "Service",
    "ServiceSetup",
    "SwitchboardError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "add_server_arguments",
    "configure_logging",
    "create_server",
    "current_deadline",
    "current_http_address",
    "current_request_id",
    "from_rpc_error",
    "parse_server_config",
    "remaining_time",
    "request_scope",
    "run_main",
    "run_service",
    "serve",
    "service_parser",
    "set_health_status",
    # client side
    "policy_for",
    "retry_table",
    "Client",
    "ClientConfig",
    "Connection",
    "MethodSpec",
    "RegistrationAgent",
    "RegistryClient",
    "RegistryConfig",
    "RetryPolicy",
    "RetrySettings",
    "SyncClient",
    "TypedClient",
    "add_registry_arguments",
    "update_mask",
]
