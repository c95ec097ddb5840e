"""The client's standard configuration (temporalio.envconfig): TEMPORAL_* variables and
TOML profiles, mTLS with a client certificate, a CA and a server name.

The dev server cannot serve TLS, so a TLS-terminating stand-in that requires a client
certificate sits in front of it on loopback (tests/tlsproxy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from folksjobs.infra.temporal import (
    ENVCONFIG_VARIABLES,
    TemporalConfigError,
    TemporalUnreachable,
    connect,
    connect_options,
)
from folksjobs.settings import Settings
from tests.conftest import Stack
from tests.tlsproxy import SERVER_NAME, make_pki, mtls_proxy


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*ENVCONFIG_VARIABLES, "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS"):
        monkeypatch.delenv(name, raising=False)
    # No profile file of the machine's user leaks into the test.
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))


async def test_mtls_from_temporal_variables(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path)
    async with mtls_proxy(pki, stack.temporal.address) as proxy:
        settings = Settings(_env_file=None, temporal_address=f"127.0.0.1:{proxy.port}")  # type: ignore[call-arg]
        monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(pki.ca))
        monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", SERVER_NAME)

        # The server refuses a client without a certificate. (With TLS 1.3 the refusal comes
        # after the client's side of the handshake, as a closed connection or a handshake
        # error, whichever the client sees first.)
        with pytest.raises(TemporalUnreachable):
            await connect(settings, attempts=1)

        monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(pki.client_cert))
        monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(pki.client_key))
        client = await connect(settings, attempts=3)
        assert await client.service_client.check_health()
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version


async def test_mtls_from_a_toml_profile(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path)
    async with mtls_proxy(pki, stack.temporal.address) as proxy:
        config = tmp_path / "temporal.toml"
        config.write_text(
            f"""
[profile.selfhosted]
address = "127.0.0.1:{proxy.port}"
namespace = "default"

[profile.selfhosted.tls]
client_cert_path = "{pki.client_cert}"
client_key_path = "{pki.client_key}"
server_ca_cert_path = "{pki.ca}"
server_name = "{SERVER_NAME}"
"""
        )
        monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
        monkeypatch.setenv("TEMPORAL_PROFILE", "selfhosted")
        # No TEMPORAL_ADDRESS anywhere: the profile's address wins over the default.
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert connect_options(settings)["target_host"] == f"127.0.0.1:{proxy.port}"
        client = await connect(settings, attempts=3)
        assert await client.service_client.check_health()


def test_settings_given_explicitly_win_over_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.default]\naddress = "profile:7233"\nnamespace = "from-profile"\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    opts = connect_options(Settings(_env_file=None, temporal_namespace="mine"))  # type: ignore[call-arg]
    assert (opts["target_host"], opts["namespace"], opts["tls"]) == (
        "profile:7233",
        "mine",
        False,
    )
    opts = connect_options(Settings(_env_file=None, temporal_api_key=SecretStr("k")))  # type: ignore[call-arg]
    assert opts["api_key"] == "k" and opts["tls"] is True


def test_a_missing_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "nope")
    with pytest.raises(TemporalConfigError, match="nope"):
        connect_options(Settings(_env_file=None))  # type: ignore[call-arg]
