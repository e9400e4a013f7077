"""A reviewer at the review desk, for the tests: an httpx client on the ASGI app that signs
in as a real account and posts forms with the page's own CSRF token."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from typing import Any

import httpx

from mailguard import config
from mailguard.web.app import create_app

PASSWORD = "correct horse battery staple"
ROLES = ("dpo", "dsl", "it", "auditor")


def add_accounts(gw: Any) -> None:
    """One account per role, as `mailguard users add NAME --role ROLE` makes them (the
    command itself is tested in test_desk), straight into the store: no process each."""
    from mailguard import config
    from mailguard.store import audit, reviewers
    from mailguard.store.opening import open_store

    async def add() -> None:
        db = await open_store(config.load(gw.config_path, checks=False).storage)
        try:
            for role in ROLES:
                await reviewers.add(db, role, role, PASSWORD)
                await audit.record(db, audit.current_actor(), "account", None,
                                   f"account {role} added as {role}")
        finally:
            await db.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(add())
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:   # called from an async test
        pool.submit(asyncio.run, add()).result()


def csrf_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, "no CSRF token on the page"
    return m.group(1)


class Reviewer:
    def __init__(self, app: Any, address: str = "192.0.2.7") -> None:
        self.app = app
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50123)),
                                      base_url="http://desk.test")

    async def sign_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        page = await self.http.get("/login")
        return await self.http.post("/login", data={"csrf": csrf_of(page.text), "name": name,
                                                    "password": password})

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def post(self, url: str, data: dict[str, Any] | None = None, from_page: str = "/queue"
                   ) -> httpx.Response:
        """A form posted as the browser would: with the CSRF token of a page of the desk."""
        page = await self.http.get(from_page)
        return await self.http.post(url, data={"csrf": csrf_of(page.text), **(data or {})})


def desk_app(gw: Any) -> Any:
    return create_app(config.load(gw.config_path), None)


async def signed_in(gw: Any, name: str) -> tuple[Any, Reviewer]:
    """The desk's app for this gateway's store, and a reviewer signed in to it."""
    app = desk_app(gw)
    reviewer = Reviewer(app)
    assert (await reviewer.sign_in(name)).status_code == 303
    return app, reviewer


async def close(app: Any) -> None:
    if app.state.desk.db is not None:
        await app.state.desk.db.close()
