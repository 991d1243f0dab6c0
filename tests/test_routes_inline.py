"""Every route of the app and every dependency it takes is a coroutine function: FastAPI runs a
plain function in a worker thread, a hop there and back per request that showed in the profile
of every endpoint (identity.web.depends)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Route

from identity.app import create_app
from identity.settings import Settings


def threaded(dependant: Dependant, path: str) -> list[str]:
    found = []
    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and not (
            inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
        ):
            found.append(f"{path}: {getattr(call, '__qualname__', call)}")
        found += threaded(sub, path)
    return found


def declared(routes: list[Any], bad: list[str]) -> Iterator[Route]:
    """The routes as the routers declare them (FastAPI keeps an included router whole, as
    `original_router`); a router's own dependencies are checked on the way."""
    for route in routes:
        router = getattr(route, "original_router", None)
        if router is None:
            if isinstance(route, Route):  # an APIRoute is one too
                yield route
            continue
        bad += [
            f"{router.prefix or '/'}: {depends.dependency.__qualname__}"
            for depends in router.dependencies
            if not inspect.iscoroutinefunction(depends.dependency)
        ]
        yield from declared(router.routes, bad)


def test_no_route_or_dependency_runs_in_a_thread(settings: Settings) -> None:
    bad: list[str] = []
    routes = list(declared(create_app(settings).routes, bad))
    assert len(routes) > 40
    for route in routes:
        if not inspect.iscoroutinefunction(route.endpoint):
            bad.append(f"{route.path}: the route itself")
        if isinstance(route, APIRoute):
            bad += threaded(route.dependant, route.path)
    assert not bad, "run in a worker thread:\n" + "\n".join(sorted(set(bad)))
