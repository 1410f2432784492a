"""The grpc.aio server interceptor: check each call's key, refuse it or serve it as its principal.

The principal is set around the method's own code (not in the interceptor's
frame), so it holds for exactly the call it belongs to, including the tasks
that call starts. A streaming call holds a grant (`current_grant()`), which
the authenticator ends when the key is revoked or expires: the method then
stops taking work, answers what it already took and ends UNAUTHENTICATED.
Should a method not end by itself within GRANT_DRAIN_SECONDS_MAX of that,
it is cancelled and the call refused here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import grpc

from ledger._streams import drain_requests

from ._authenticator import Authenticator
from ._permissions import MethodPermissions, is_open
from ._principal import AuthFailure, Grant, Principal, acting_as

GRANT_DRAIN_SECONDS_MAX: Final = 60.0
"""How long a streaming call may take to answer what it took before its key was refused, at most."""


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Health checking and reflection pass without a key; every other method needs the permission its service
    gives it (`permissions`), which the key's role must grant."""

    def __init__(self, authenticator: Authenticator, permissions: MethodPermissions) -> None:
        self._authenticator = authenticator
        self._permissions = permissions

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
            principal = await self._authenticator.authenticate(
                handler_call_details.invocation_metadata, method, self._permissions.needed(method)
            )
        except AuthFailure as failure:
            return _refusing(handler, failure.code, failure.message)
        if principal is None:
            return handler  # no key asked for: the call runs as nobody, the context's default, unwrapped
        if handler.request_streaming or handler.response_streaming:
            return _streaming_as(handler, principal, self._authenticator)
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
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        if handler.request_streaming:
            await drain_requests(request)  # so that the client's writes do not fail before it reads this status
        await context.abort(code, message)

    return _rebuild(handler, refuse)


async def _write_all(responses: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
    async with contextlib.aclosing(responses):  # type: ignore[type-var]
        async for response in responses:
            await context.write(response)


def _streaming_as(
    handler: grpc.RpcMethodHandler, principal: Principal, authenticator: Authenticator
) -> grpc.RpcMethodHandler:
    """A streaming method served as `principal` for as long as its key is allowed."""
    behavior = _behavior(handler)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        grant = authenticator.open_grant(principal)
        try:
            with acting_as(principal, grant):  # the task below starts with this context
                if inspect.isasyncgenfunction(behavior):
                    body = asyncio.ensure_future(_write_all(behavior(request, context), context))
                else:
                    body = asyncio.ensure_future(behavior(request, context))
            return await _until_ended(body, grant, context)
        finally:
            authenticator.close_grant(grant)

    return _rebuild(handler, stream)


async def _until_ended(body: asyncio.Future[Any], grant: Grant, context: grpc.aio.ServicerContext) -> Any:
    """The call's result; once its grant ends, the call ends too (by itself, or stopped and refused)."""
    ended = grant.ended()
    try:
        await asyncio.wait((body, ended), return_when=asyncio.FIRST_COMPLETED)
        if not body.done():
            await asyncio.wait((body,), timeout=GRANT_DRAIN_SECONDS_MAX)
    finally:
        if not body.done():  # the grant ended, or this call was cancelled
            body.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await body
    if body.cancelled() and grant.refusal is not None:
        await context.abort(grant.refusal.code, grant.refusal.message)
    return body.result()


def _acting_as(handler: grpc.RpcMethodHandler, principal: Principal | None) -> grpc.RpcMethodHandler:
    behavior = _behavior(handler)
    if inspect.isasyncgenfunction(behavior):
        # Served as a coroutine writing each response, so that the principal is set and reset in one frame.
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> None:
            with acting_as(principal):
                await _write_all(behavior(request, context), context)

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
