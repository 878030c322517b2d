"""What every Switchboard service process runs on: server runtime (and, later, client runtime).

Example::

    from services.runtime import NotFound, ServerConfig, Service, serve
"""

from __future__ import annotations

from services.runtime._agent import RegistrationAgent
from services.runtime._client import Client, ClientConfig, Connection
from services.runtime._context import (
    current_deadline,
    current_request_id,
    remaining_time,
    request_scope,
)
from services.runtime._discovery import RegistryConfig, add_registry_arguments
from services.runtime._retry import RETRY_TABLE, MethodSpec, RetryPolicy, RetrySettings
from services.runtime._serve import Lifecycle, configure_logging, run_main, serve
from services.runtime._server import (
    BindError,
    HealthServicer,
    Service,
    create_server,
    set_health_status,
)
from services.runtime._service_main import (
    ListeningHook,
    ServiceSetup,
    run_service,
    service_parser,
)
from services.runtime._sync import SyncClient
from services.runtime.clients import ProductClient, RegistryClient, UserClient
from services.runtime.config import (
    ConfigError,
    ServerConfig,
    add_server_arguments,
    parse_server_config,
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
    "RETRY_TABLE",
    "Client",
    "ClientConfig",
    "Connection",
    "MethodSpec",
    "ProductClient",
    "RegistrationAgent",
    "RegistryClient",
    "RegistryConfig",
    "RetryPolicy",
    "RetrySettings",
    "SyncClient",
    "UserClient",
    "add_registry_arguments",
]
