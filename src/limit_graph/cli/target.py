"""Where the CLI finds the server and its key: the configuration ``limit up`` reads.

The address is ``--url``, else ``LIMIT_API_URL``, else ``server.bind_address`` of the
configuration (defaults, the ``LIMIT_CONFIG`` file, then ``BIND_ADDRESS``), https when
that configuration serves TLS.  The admin key is ``--api-key``, else ``LIMIT_API_KEY``,
else ``admin_api_key`` (``LIMIT_ADMIN_API_KEY``), else ``<home>/admin.key``, where home
is ``LIMIT_HOME``, the file's ``home`` or ``.limit``; a relative home is taken from the
current directory, as ``limit up`` takes it.  The running ``limit up`` that recorded
itself (:mod:`limit_graph.cli.record`) gives the address and the home, from any folder,
unless a home is named or the address the CLI is told is another server's.  A
missing key stops the command before any request, naming every place that was looked at.

>>> connect_url(ServerSettings(bind_address="0.0.0.0:9000"))
'http://127.0.0.1:9000'
"""

from __future__ import annotations

import os
import ssl
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import certifi

from limit_graph.cli.client import ApiClient, CliError
from limit_graph.cli.record import UpRecord, read_record, record_path
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import ServerSettings, Settings, load_settings

__all__ = ["Configuration", "Target", "connect_url", "open_client"]

DEFAULT_HOME = Settings.model_fields["home"].default
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]", "": "127.0.0.1"}


def connect_url(server: ServerSettings) -> str:
    """The address a client on this machine uses for a server bound as ``server`` says."""
    host = ANY_ADDRESS.get(server.host, server.host)
    scheme = "https" if server.ssl_certfile else "http"
    return f"{scheme}://{host}:{server.port}"


@dataclass(frozen=True)
class Target:
    """A server to call: its address, where that address came from, the key and trust."""

    url: str
    origin: str
    key: str
    verify: ssl.SSLContext | bool = True


class Configuration:
    """The settings ``limit up`` would start with, read once and only when needed.

    The client needs the bind address, the home and the keys; the server's storage and
    the secret rules of prod mode are not its business, so those never stop it.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)
        self._told_url: str | None = None

    @cached_property
    def settings(self) -> Settings:
        try:
            with warnings.catch_warnings():  # the server's to print at start, not ours
                warnings.simplefilter("ignore")
                return load_settings(environ=self._env, mode="dev", storage__type="memory")
        except ConfigError as exc:
            raise CliError(
                f"cannot read the configuration: {exc} (--url and --api-key, or "
                "LIMIT_API_URL and LIMIT_API_KEY, work without it)"
            ) from None

    @cached_property
    def running(self) -> UpRecord | None:
        """The running ``limit up`` it recorded (``limit_graph.cli.record``), when nothing
        names a home and nothing names another server than the one it serves."""
        if self._env.get("LIMIT_HOME") or self.settings.home != DEFAULT_HOME:
            return None
        record = read_record(self._env)
        if record is None:
            return None
        told = self._told_url or self._env.get("LIMIT_API_URL")
        if not told and (self._env.get("LIMIT_CONFIG") or self._env.get("BIND_ADDRESS")):
            told = connect_url(self.settings.server)
        if told and told.rstrip("/").lower() != record.url.rstrip("/").lower():
            return None
        return record

    @property
    def home(self) -> Path:
        """The state folder, absolute; a relative home starts in the current folder, as
        ``limit up`` takes it; the running ``limit up``'s when nothing names one."""
        if self.running is not None:
            return self.running.home
        return Path.cwd() / self.settings.home

    def target(self, url: str | None, key: str | None) -> Target:
        """The server to call and the admin key to call it with; the key first."""
        self._told_url = url or None
        admin_key = self.admin_key(key)
        if url:
            return Target(url.rstrip("/"), "--url", admin_key)
        if self._env.get("LIMIT_API_URL"):
            return Target(self._env["LIMIT_API_URL"].rstrip("/"), "LIMIT_API_URL", admin_key)
        if self.running is not None and not self._explicit_server:
            origin = f"the running limit up, recorded in {record_path(self._env)}"
            return Target(self.running.url, origin, admin_key, self._trust())
        server = self.settings.server
        return Target(
            connect_url(server), f"server.bind_address of {self._source}", admin_key, self._trust()
        )

    def admin_key(self, explicit: str | None) -> str:
        """The admin key, or a :class:`CliError` naming every place looked."""
        if explicit:
            return explicit
        if self._env.get("LIMIT_API_KEY"):
            return self._env["LIMIT_API_KEY"]
        secret = self.settings.admin_api_key
        if secret is not None:
            return secret.get_secret_value()
        return self._key_file(
            "admin.key", "admin_api_key", ["LIMIT_API_KEY", "LIMIT_ADMIN_API_KEY"]
        )

    def runner_key(self, explicit: str | None) -> str:
        """The runner key (``limit runner``), or a :class:`CliError` naming the places."""
        if explicit:
            return explicit
        if self._env.get("LIMIT_RUNNER_API_KEY"):
            return self._env["LIMIT_RUNNER_API_KEY"]
        secret = self.settings.dispatch.runner_api_key
        if secret is not None:
            return secret.get_secret_value()
        return self._key_file("runner.key", "dispatch.runner_api_key", ["LIMIT_RUNNER_API_KEY"])

    @property
    def _explicit_server(self) -> bool:
        return bool(self._env.get("LIMIT_CONFIG") or self._env.get("BIND_ADDRESS"))

    @property
    def _source(self) -> str:
        return self.settings.source or "the defaults (no LIMIT_CONFIG)"

    def _key_file(self, name: str, setting: str, variables: list[str]) -> str:
        """The key in ``<home>/name``; when there is none, every place looked is named."""
        path = self.home / name
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            looked = ["--api-key", *variables]
            if self.settings.source:
                looked.append(f"{setting} in {self.settings.source}")
            raise CliError(
                f"no API key found: looked at {', '.join(looked)} and the file {path} "
                f"(home from {self._home_origin()})"
            ) from None
        except OSError as exc:
            raise CliError(f"cannot read the key file {path}: {exc}") from None
        if not key:
            raise CliError(f"the key file {path} is empty")
        return key

    def _home_origin(self) -> str:
        if self.running is not None:
            return f"the running limit up, recorded in {record_path(self._env)}"
        if self._env.get("LIMIT_HOME"):
            return "LIMIT_HOME"
        if self.settings.home != DEFAULT_HOME:
            return f"home in {self.settings.source}"
        return "the default .limit in the current folder; LIMIT_HOME or LIMIT_CONFIG names another"

    def _trust(self) -> ssl.SSLContext | bool:
        """The usual CAs, plus the server's own certificate when it is readable here
        (a self-signed certificate then verifies too)."""
        certfile = self.running.certfile if self.running else self.settings.server.ssl_certfile
        if certfile is None or not certfile.is_file():
            return True
        context = ssl.create_default_context(cafile=certifi.where())
        try:
            context.load_verify_locations(cafile=str(certfile))
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"cannot load the server certificate {certfile}: {exc}") from None
        return context


def open_client(
    url: str | None, key: str | None, configuration: Configuration | None = None
) -> ApiClient:
    """A client for the server and key the options, environment and configuration name."""
    target = (configuration or Configuration()).target(url, key)
    return ApiClient(target.url, target.key, verify=target.verify, origin=target.origin)
