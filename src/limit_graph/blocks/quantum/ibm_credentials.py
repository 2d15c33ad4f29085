"""The IBM Quantum credentials block: an API key (saved sealed) and an instance.

The client derives IBM's hosts from ``url`` (``https://cloud.ibm.com`` by default:
``quantum.`` for the API, ``iam.`` and ``api.global-search-tagging.`` for the account);
``proxy_url`` sends every request through an HTTP proxy, which is also how the tests
reach a local stand-in of IBM.  The client signs its API requests with a token from
``IAM_URL`` (an environment variable), else ``https://iam.cloud.ibm.com``, whatever
``url`` says.

>>> crn = "crn:v1:bluemix:public:quantum-computing:eu-de:a/0:0::"
>>> IBMQuantumCredentials(api_key="key", instance=crn).runtime_api_url()
'https://eu-de.quantum.cloud.ibm.com/api/v1'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from prefect.blocks.abstract import CredentialsBlock
from pydantic import Field, SecretStr

from limit_graph.blocks.quantum.ibm_errors import ibm_call
from limit_graph.blocks.sealed_secrets import open_block_secret, seal_block_secret
from limit_graph.core.errors import ConfigError

if TYPE_CHECKING:
    from prefect.client.schemas import BlockDocument
    from qiskit_ibm_runtime import QiskitRuntimeService

__all__ = ["DEFAULT_CREDENTIALS_BLOCK", "IBMQuantumCredentials", "load_credentials"]

DEFAULT_CREDENTIALS_BLOCK = "limit-ibm-quantum"
"""The credentials block an ``IBMRuntimeTarget`` loads when it holds none."""


class IBMQuantumCredentials(CredentialsBlock):
    """An IBM Quantum Platform API key and service instance.

    The API key is saved sealed under the platform's key-encryption key (Prefect's
    database holds its ciphertext only; :mod:`limit_graph.blocks.sealed_secrets`), so
    the process that saves the block and every runner that uses it need
    ``LIMIT_DATA_KEK`` (or ``LIMIT_DATA_KEK_FILE``).  A key saved before, or typed into
    the Prefect UI, is read as it is, and sealed when the block is next saved here.

    Attributes:
        api_key: IBM Cloud API key.
        instance: The instance's CRN (or name); ``None`` lets the client pick one.
        channel: The client's channel; ``ibm_cloud`` is the legacy name of the same API.
        url: IBM Cloud base URL; ``None`` is ``https://cloud.ibm.com``.
        proxy_url: HTTP proxy for every request to IBM, if the network needs one.

    Example:
        ```python
        from limit_graph.blocks.quantum.ibm import IBMQuantumCredentials

        credentials = IBMQuantumCredentials(api_key="...", instance="crn:v1:...")
        credentials.save("limit-ibm-quantum")
        service = credentials.get_service()
        ```
    """

    _block_type_name = "LIMIT IBM Quantum Credentials"
    _block_type_slug = "limit-ibm-quantum-credentials"
    _description = "An IBM Quantum Platform API key and instance (CRN) for the ibm: targets."

    api_key: SecretStr = Field(default=..., description="IBM Cloud API key.")
    instance: SecretStr | None = Field(
        default=None, description="Instance CRN or name; empty lets the client choose."
    )
    channel: Literal["ibm_quantum_platform", "ibm_cloud"] = Field(
        default="ibm_quantum_platform", description="qiskit-ibm-runtime channel."
    )
    url: str | None = Field(
        default=None, description="IBM Cloud base URL; empty is https://cloud.ibm.com."
    )
    proxy_url: str | None = Field(default=None, description="HTTP proxy for requests to IBM.")

    def label(self) -> str:
        """How errors name these credentials: the block's name once saved or loaded."""
        name = self._block_document_name
        return f"credentials block {name!r}" if name else "the IBM Quantum credentials given"

    def get_client(self, *_: Any, **__: Any) -> QiskitRuntimeService:
        """The credentials' client (Prefect's name for :meth:`get_service`)."""
        return self.get_service()

    def get_service(self) -> QiskitRuntimeService:
        """A ``QiskitRuntimeService`` signed in with these credentials (network calls)."""
        from qiskit_ibm_runtime import QiskitRuntimeService

        proxies = {"urls": {"http": self.proxy_url, "https": self.proxy_url}}
        return ibm_call(
            "signing in to IBM Quantum",
            self.label(),
            lambda: QiskitRuntimeService(
                channel=self.channel,
                token=self.plain_api_key(),
                url=self.url,
                instance=self._instance() or "auto",
                proxies=proxies if self.proxy_url else None,
            ),
        )

    def runtime_api_url(self) -> str | None:
        """The IBM Quantum API base URL the client will call, by the client's own resolver
        (no network); ``None`` when the instance is a name or left to the client."""
        from qiskit_ibm_runtime.accounts import Account
        from qiskit_ibm_runtime.api.client_parameters import ClientParameters
        from qiskit_ibm_runtime.utils import is_crn

        account = Account.create_account(
            channel=self.channel, token="", url=self.url, instance=self._instance()
        )
        if not is_crn(account.instance):
            return None
        parameters = ClientParameters(
            channel=self.channel, token="", url=account.url, instance=account.instance
        )
        return cast(str, parameters.get_runtime_api_base_url())

    def _instance(self) -> str | None:
        return self.instance.get_secret_value() if self.instance else None

    def plain_api_key(self) -> str:
        """The API key, opened if it was loaded sealed (bound to this block's name)."""
        return open_block_secret(
            self.api_key.get_secret_value(),
            slug=self.get_block_type_slug(),
            name=self._block_document_name or "",
            field="api_key",
        )

    def _to_block_document(
        self,
        name: str | None = None,
        block_schema_id: Any = None,
        block_type_id: Any = None,
        is_anonymous: bool | None = None,
        include_secrets: bool = False,
    ) -> BlockDocument:
        """Prefect's document of the block, the API key sealed for the name it is saved
        under whenever the document carries secrets (what a save sends).

        Prefect 3 offers no public place for this: its secret handling (``SecretStr``
        with the ``include_secrets`` context of ``Block.ser_model``) writes each secret's
        plain value over whatever a pydantic serializer made of it, it has no save hook,
        and only this method, which every save (sync or async, new or overwritten)
        goes through, is given the document name the seal is bound to."""
        document = super()._to_block_document(
            name, block_schema_id, block_type_id, is_anonymous, include_secrets
        )
        if include_secrets:
            document.data["api_key"] = seal_block_secret(
                self.plain_api_key(),
                slug=self.get_block_type_slug(),
                name=document.name or "",
                field="api_key",
            )
        return document


def load_credentials(names: Sequence[str]) -> IBMQuantumCredentials:
    """The first of the credentials blocks ``names`` that exists (a backend instance's
    own, then the default one); a :class:`ConfigError` naming them when none does."""
    for name in names:
        try:
            # _sync: the blocking load even on an event loop (a runner validating inputs),
            # where Prefect's load would otherwise hand back a coroutine.
            block: object = IBMQuantumCredentials.load(name, _sync=True)  # type: ignore[call-arg]
        except ValueError:
            continue
        if not isinstance(block, IBMQuantumCredentials):
            raise ConfigError(f"block {name!r} is not IBM Quantum credentials")
        return block
    raise ConfigError(
        f"no IBM Quantum credentials block {' or '.join(map(repr, names))}: save one "
        "(`limit prefect register` saves an instance's api_key) or create it in the Prefect UI"
    )
