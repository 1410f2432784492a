"""The grpc.aio server interceptor: check each call's key, refuse it or serve it as its principal.

The principal is set around the method's own code (not in the interceptor's
frame), so it holds for exactly the call it belongs to, including the tasks
that call starts.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ._authenticator import Authenticator, AuthFailure
from ._principal import Principal, acting_as, is_open


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Health checking and reflection pass without a key; every other method needs what its role allows."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        try:
            principal = await self._authenticator.authenticate(handler_call_details.invocation_metadata, method)
        except AuthFailure as failure:
            return _refusing(handler, failure.code, failure.message)
        if principal is None:
            return handler  # no key asked for: the call runs as nobody, the context's default, unwrapped
        return _acting_as(handler, principal)


def _rebuild(handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """The same method (arity, serialisation) with another behaviour."""
    if handler.request_streaming and handler.response_streaming:
        make = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        make = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        make = grpc.unary_stream_rpc_method_handler
    else:
        make = grpc.unary_unary_rpc_method_handler
    return make(
        behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream  # type: ignore[no-any-return]


def _refusing(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    async def refuse(_: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    return _rebuild(handler, refuse)


def _acting_as(handler: grpc.RpcMethodHandler, principal: Principal | None) -> grpc.RpcMethodHandler:
    behavior = _behavior(handler)
    if inspect.isasyncgenfunction(behavior):
        # Served as a coroutine writing each response, so that the principal is set and reset in one frame.
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> None:
            with acting_as(principal):
                responses: AsyncIterator[Any] = behavior(request, context)
                async with contextlib.aclosing(responses):  # type: ignore[type-var]
                    async for response in responses:
                        await context.write(response)

        return _rebuild(handler, stream)
    if inspect.iscoroutinefunction(behavior):

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with acting_as(principal):
                return await behavior(request, context)

        return _rebuild(handler, call)

    def plain(request: Any, context: Any) -> Any:
        with acting_as(principal):
            return behavior(request, context)

    return _rebuild(handler, plain)
