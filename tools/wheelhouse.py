"""Download everything ``tools/setup_env.sh`` installs into one folder, for an offline node.

Run on a machine that reaches a package registry (``bash tools/setup_env.sh
--download-wheelhouse DIR`` calls this); copy DIR to the node and run ``MAE_SEG_WHEELHOUSE=DIR
MAE_SEG_SYSTEM_SITE=1 bash tools/setup_env.sh`` there.

pip cannot resolve for another machine while leaving out what that machine already has: its
resolver would want torch's whole CUDA closure (gigabytes) just to learn that the node has
it. So this walks the requirement graph itself, one level at a time: each level is fetched
with ``pip download --no-deps`` for the target Python and platform, the wheels' own
``Requires-Dist`` (markers evaluated for the target) give the next level, and a package the
node has (``--have``, e.g. its ``pip freeze``) is neither fetched nor followed. mmcv comes
as its sdist, built on the node; its runtime requirements are read from the sdist.

The folder gets ``requirements.txt`` (the runtime wheels, pinned) for the install.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # a bare interpreter: pip carries its own copy
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import (
        canonicalize_name,
        parse_sdist_filename,
        parse_wheel_filename,
    )
    from pip._vendor.packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
MANYLINUX = ['manylinux_2_28', 'manylinux_2_27', 'manylinux_2_17', 'manylinux2014', 'manylinux1']
# Distributions that provide the same import under another name: mmengine and mmcv ask for
# opencv-python, while GPU images often ship opencv-python-headless.
PROVIDES = {
    'opencv-python': {
        'opencv-python-headless',
        'opencv-contrib-python',
        'opencv-contrib-python-headless',
    },
}

Fetch = Callable[[list[str]], list[Path]]


class WheelhouseError(Exception):
    """A requirement that cannot be met for the target, named with the fix."""


def read_have(path: Path | None) -> set[str]:
    """Canonical names of the distributions the node already has.

    Accepts ``pip freeze`` (``name==1.0``, ``name @ file://...``), ``pip list`` (``name
    1.0``) or bare names, one a line; ``#`` comments and pip options are skipped.
    """
    if path is None:
        return set()
    names = set()
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if not line or line.startswith('-') or set(line) <= set('- '):
            continue
        name = re.split(r'[\s=<>!~;@\[]', line, maxsplit=1)[0]
        if name.lower() != 'package':  # pip list's header
            names.add(canonicalize_name(name))
    return names


def is_provided(name: str, have: set[str]) -> bool:
    """Whether the node has ``name`` or a distribution that stands in for it."""
    name = canonicalize_name(name)
    return name in have or bool(PROVIDES.get(name, set()) & have)


def target_environment(python_version: str) -> dict[str, str]:
    """Marker environment of a CPython ``python_version`` on x86-64 Linux."""
    env = dict(default_environment())
    env.update(
        python_version=python_version,
        python_full_version=f'{python_version}.0',
        implementation_name='cpython',
        platform_python_implementation='CPython',
        sys_platform='linux',
        platform_system='Linux',
        platform_machine='x86_64',
        os_name='posix',
    )
    return env


def applicable(requirement: Requirement, env: dict[str, str], extras: Iterable[str] = ()) -> bool:
    """Whether ``requirement`` applies on the target, with these extras asked for."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**env, 'extra': e}) for e in ('', *extras))


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The ``Requires-Dist`` lines of a wheel's metadata."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith('.dist-info/METADATA'))
        text = archive.read(metadata).decode()
    return [
        Requirement(line.split(':', 1)[1])
        for line in text.splitlines()
        if line.startswith('Requires-Dist:')
    ]


def sdist_requirements(sdist: Path) -> list[Requirement]:
    """mmcv's runtime requirements, from ``requirements/runtime.txt`` in its sdist."""
    with tarfile.open(sdist) as archive:
        member = next(
            m for m in archive.getmembers() if m.name.endswith('requirements/runtime.txt')
        )
        text = archive.extractfile(member).read().decode()
    lines = (line.split('#', 1)[0].strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line]


def project_requirements(extras: Iterable[str]) -> list[Requirement]:
    """mae_seg's ``install_requires`` and the named extras, read from ``setup.py``."""
    import setuptools

    captured: dict = {}
    original, setuptools.setup = setuptools.setup, lambda **kwargs: captured.update(kwargs)
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)  # setup.py reads README.md relative to the working directory
        code = compile((ROOT / 'setup.py').read_text(), str(ROOT / 'setup.py'), 'exec')
        exec(code, {'__file__': str(ROOT / 'setup.py'), '__name__': '__main__'})
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    lines = list(captured['install_requires'])
    for extra in extras:
        lines += captured.get('extras_require', {}).get(extra, [])
    return [Requirement(line) for line in lines]


def resolve(
    roots: list[Requirement],
    have: set[str],
    env: dict[str, str],
    fetch: Fetch,
    requirements_of: Callable[[Path], list[Requirement]] = wheel_requirements,
) -> dict[str, Path]:
    """Fetch ``roots`` and what they need, less what the node has.

    Args:
        roots: requirements of the set-up (their markers evaluated for ``env``).
        have: canonical names the node has; neither fetched nor followed.
        env: marker environment of the target.
        fetch: downloads requirement strings without their dependencies and returns the
            files it wrote.
        requirements_of: the requirements of a downloaded file.

    Returns:
        Canonical name -> downloaded file.

    Raises:
        WheelhouseError: two requirements on one package that no single version meets.
    """
    found: dict[str, tuple[str, Path]] = {}
    wanted: dict[str, list[Requirement]] = {}
    level = [r for r in roots if applicable(r, env)]
    while level:
        new = []
        for requirement in level:
            name = canonicalize_name(requirement.name)
            if is_provided(name, have):
                continue
            wanted.setdefault(name, []).append(requirement)
            if name not in found and all(canonicalize_name(r.name) != name for r in new):
                new.append(requirement)
        for path in fetch([str(_merged(wanted[canonicalize_name(r.name)])) for r in new]):
            name, version = _name_and_version(path)
            found[name] = (version, path)
        for name, requirements in wanted.items():
            if name in found:
                _check_versions(name, found[name][0], requirements)
        level = [
            r
            for requirement in new
            if canonicalize_name(requirement.name) in found
            for r in requirements_of(found[canonicalize_name(requirement.name)][1])
            if applicable(r, env, requirement.extras)
        ]
        missing = [r.name for r in new if canonicalize_name(r.name) not in found]
        if missing:
            raise WheelhouseError(f'pip fetched nothing for {", ".join(missing)}')
    return {name: path for name, (_, path) in found.items()}


def _merged(requirements: list[Requirement]) -> Requirement:
    merged = Requirement(requirements[0].name)
    for requirement in requirements:
        merged.specifier &= requirement.specifier
    return merged


def _check_versions(name: str, version: str, requirements: list[Requirement]) -> None:
    for requirement in requirements:
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            raise WheelhouseError(
                f'{name} {version} was fetched but another package needs {requirement}; '
                'pin a version that suits both with --extra'
            )


def _name_and_version(path: Path) -> tuple[str, str]:
    if path.suffix == '.whl':
        name, version, *_ = parse_wheel_filename(path.name)
    else:
        name, version = parse_sdist_filename(path.name)
    return canonicalize_name(name), str(version)


def pip_fetcher(dest: Path, python_version: str, binary: bool = True) -> Fetch:
    """``pip download --no-deps`` into ``dest`` for CPython ``python_version`` on x86-64."""
    platforms = [f'{tag}_x86_64' for tag in MANYLINUX] + ['linux_x86_64', 'any']
    target = ['--python-version', python_version, '--implementation', 'cp']
    target += [arg for platform in platforms for arg in ('--platform', platform)]
    kind = (
        ['--only-binary=:all:', *target]
        if binary
        else ['--no-binary=:all:', '--no-build-isolation']
    )

    def fetch(requirements: list[str]) -> list[Path]:
        if not requirements:
            return []
        command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', str(dest)]
        print(f'  fetching {len(requirements)}: {" ".join(requirements)}', flush=True)
        done = subprocess.run(command + kind + requirements, capture_output=True, text=True)
        if done.returncode:
            reason = [line for line in done.stderr.splitlines() if line.startswith('ERROR')]
            raise WheelhouseError(reason[0] if reason else done.stderr.strip()[-300:])
        # pip writes nothing for a file already in dest, so look files up by requirement.
        return [_newest_match(dest, Requirement(r)) for r in requirements]

    return fetch


def _newest_match(dest: Path, requirement: Requirement) -> Path:
    name = canonicalize_name(requirement.name)
    matches = [
        (Version(version), path)
        for path in dest.iterdir()
        if _is_package(path)
        for found, version in [_name_and_version(path)]
        if found == name and requirement.specifier.contains(version, prereleases=True)
    ]
    if not matches:
        raise WheelhouseError(f'pip reported {requirement} fetched, but no such file is in {dest}')
    return max(matches)[1]


def _is_package(path: Path) -> bool:
    return path.suffix == '.whl' or path.name.endswith('.tar.gz')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='wheelhouse', description=__doc__.split('\n\n')[0])
    parser.add_argument('dest', type=Path, help='folder to fill (created if missing)')
    parser.add_argument(
        '--python-version',
        default='.'.join(map(str, sys.version_info[:2])),
        help="the node's Python, e.g. 3.12 (default: this interpreter's)",
    )
    parser.add_argument(
        '--have',
        type=Path,
        help="what the node has: its 'pip freeze' or 'pip list' output, or names "
        '(default: torch and torchvision only)',
    )
    parser.add_argument(
        '--sdist',
        action='append',
        default=[],
        metavar='REQ',
        help='a requirement fetched as source and built on the node (mmcv)',
    )
    parser.add_argument(
        '--extra',
        action='append',
        default=[],
        metavar='REQ',
        help='one more requirement, fetched even if the node has it (build tools)',
    )
    parser.add_argument(
        '--project-extra',
        action='append',
        default=['tests'],
        metavar='NAME',
        help="mae_seg's extras to include (default: tests)",
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r'3\.\d+', args.python_version):
        parser.error(f'--python-version {args.python_version!r}: expected e.g. 3.12')
    if args.have is not None and not args.have.is_file():
        parser.error(f'--have {args.have}: no such file (write it with pip freeze on the node)')
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    have = read_have(args.have) if args.have else {'torch', 'torchvision'}
    env = target_environment(args.python_version)
    args.dest.mkdir(parents=True, exist_ok=True)
    try:
        print(f'wheelhouse: CPython {args.python_version}, x86-64 Linux, into {args.dest}')
        sdists = pip_fetcher(args.dest, args.python_version, binary=False)(args.sdist)
        roots = project_requirements(args.project_extra)
        roots += [r for sdist in sdists for r in sdist_requirements(sdist)]
        built_on_node = {_name_and_version(sdist)[0] for sdist in sdists}
        roots = [r for r in roots if canonicalize_name(r.name) not in built_on_node]
        wheels = resolve(roots, have, env, pip_fetcher(args.dest, args.python_version))
        # Build tools are wanted in the node's venv whatever the node has elsewhere, and may
        # be two versions of one package (the set-up swaps setuptools around the mmcv build).
        fetch = pip_fetcher(args.dest, args.python_version)
        tools = [path for extra in args.extra for path in fetch([extra])]
    except WheelhouseError as error:
        print(f'wheelhouse: error: {error}', file=sys.stderr)
        return 2
    pinned = sorted(f'{name}=={_name_and_version(path)[1]}' for name, path in wheels.items())
    (args.dest / 'requirements.txt').write_text('\n'.join(pinned) + '\n')
    size = sum(p.stat().st_size for p in args.dest.iterdir() if _is_package(p)) / 2**20
    print(
        f'wheelhouse: {len(wheels)} runtime wheels, {len(tools)} build tools, '
        f'{len(sdists)} sdist(s), {size:.1f} MiB; skipped as present: {len(have)} names'
    )
    print(
        f'wheelhouse: on the node: MAE_SEG_WHEELHOUSE={args.dest} MAE_SEG_SYSTEM_SITE=1 '
        'bash tools/setup_env.sh'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
