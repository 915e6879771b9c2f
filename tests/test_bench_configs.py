"""The mapping file the app benchmarks give both the sandbox and the relay."""

from __future__ import annotations

from pathlib import Path

from relay.config import load_mapping
from relay.sandbox.config import load_sandbox_config
from relay.tools.bench.configs import write_app_config


def test_the_app_config_spreads_apps_over_accounts_the_sandbox_serves(tmp_path: Path) -> None:
    config = write_app_config(tmp_path / "apps.toml", 8)
    accounts = {a.account_id for a in config.apps}
    assert len(accounts) == 8
    mapping = load_mapping(config.path)
    assert {mapping.account_for_app(a.id) for a in config.apps} == accounts
    sandbox = load_sandbox_config(config.path, {})
    assert accounts <= set(sandbox.accounts)
