"""pip install path: the offline tools and the core without ROS (`pip install -e .[all]`).

The ROS build (colcon, CMakeLists.txt) installs the same Python package plus the generated
messages. Heavy dependencies are extras and unpinned, so a robot PC keeps its own CUDA torch.
"""

from __future__ import annotations

from setuptools import find_packages, setup

EXTRAS: dict[str, list[str]] = {
    'model': ['transformers>=4.57,<6', 'torch>=2.5', 'safetensors'],
    'video': ['opencv-python-headless', 'matplotlib', 'scipy'],
    'bag': ['rosbags'],
    # Fine-tuning: LoRA (peft) and the transformers Trainer (needs accelerate).
    'train': ['peft', 'accelerate', 'transformers>=4.57,<6', 'torch>=2.5', 'tqdm'],
    # robo-dopamine bench (Spearman/Kendall) and bench-data (the synthetic renderer draws with
    # OpenCV). The openai backend's httpx is a core requirement; vLLM is GPU-only and lives in
    # its own env.
    'bench': ['scipy', 'opencv-python-headless'],
    # robo_dopamine_ros.rl: the gymnasium reward wrappers.
    'rl': ['gymnasium>=1.0'],
    # robo-dopamine relabel-lerobot: LeRobot v3 datasets read and written without lerobot.
    'lerobot': ['pyarrow', 'av'],
}
EXTRAS['all'] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name='robo_dopamine_ros',
    version='0.1.0',
    description='Robo-Dopamine GRM process reward for ROS 2 and offline use',
    license='Apache-2.0',
    packages=find_packages(include=['robo_dopamine_ros', 'robo_dopamine_ros.*']),
    # Non-Python files shipped inside the package (the demo episode).
    package_data={'robo_dopamine_ros': ['data/**/*', 'models/demo_grm/*',
                                       'models/demo_grm_qwen3/*']},
    python_requires='>=3.10',
    # httpx: the openai backend's pooled HTTP client (a served GRM needs no model extra).
    install_requires=['numpy', 'pillow', 'pyyaml', 'tqdm', 'httpx'],
    extras_require=EXTRAS,
    entry_points={'console_scripts': ['robo-dopamine = robo_dopamine_ros.cli:main']},
)
