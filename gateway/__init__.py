"""The HTTP gateway: shops, CRMs and POS terminals speak JSON over HTTP; the gateway authenticates nothing
itself and decides nothing about money. It forwards each caller's API key with the Wallet and Ledger RPCs it
makes through the client library, so one key table and one set of permissions serve gRPC and HTTP alike, and
it runs on any host, in as many workers as wanted."""

from ._app import create_app
from ._config import GatewayConfig
from ._problems import WALLET_PROBLEMS, Problem
from ._serve import RunningGateway, run_gateway, run_workers, start_gateway

__all__ = [
    "WALLET_PROBLEMS",
    "GatewayConfig",
    "Problem",
    "RunningGateway",
    "create_app",
    "run_gateway",
    "run_workers",
    "start_gateway",
]
