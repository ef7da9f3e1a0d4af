"""Installs mae_seg: ``pip install -e .[tests]`` (``bash tools/setup_env.sh`` does it all)."""

from pathlib import Path

from setuptools import find_packages, setup


def read_version() -> str:
    namespace: dict = {}
    exec((Path(__file__).parent / 'mae_seg' / 'version.py').read_text(), namespace)
    return namespace['__version__']


# mae_seg.deploy and tools/deployment/: ONNX export (torch's dynamo exporter translates with
# onnxscript) and onnxruntime. The tests extra has them, so the set-up and CI install them.
DEPLOY = ['onnx>=1.17', 'onnxscript>=0.3', 'onnxruntime>=1.20']


setup(
    name='mae_seg',
    version=read_version(),
    description='Fine-tune MAE-pretrained Vision Transformers for semantic segmentation '
    'with MMSegmentation 1.x',
    long_description=Path('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['mae_seg', 'mae_seg.*']),
    install_requires=[
        'torch>=2.0',
        'numpy>=1.21',
        'mmengine>=0.10.0,<1.0',
        # mmsegmentation 1.2 imports mmcv.ops, so the full mmcv (not mmcv-lite) is needed.
        'mmcv>=2.0.0,<2.2.0',
        'mmsegmentation>=1.2,<1.3',
        'timm>=0.9',
        # mae2mmseg.py: .safetensors sources and the download progress bar.
        'safetensors>=0.4',
        'tqdm',
        # mmsegmentation imports these at `import mmseg` without declaring them.
        'ftfy',
        'regex',
    ],
    extras_require={
        'deploy': DEPLOY,
        # transformers: the reference model the hub-checkpoint conversion is tested against.
        'tests': ['pytest>=7', 'ruff>=0.5', 'transformers', *DEPLOY],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
