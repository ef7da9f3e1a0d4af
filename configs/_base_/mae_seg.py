# Prepares mmengine while it reads the config, before the `mmseg::` bases listed after this
# one are looked up, so that mmseg's own entry points work on our configs in a fresh
# interpreter: mmseg.apis.init_model(CONFIG, CKPT), MMSegInferencer(model=CONFIG),
# Config.fromfile(CONFIG) and mmseg's tools/train.py, with no `import mae_seg` first.
#
# Why: mmengine 0.10 finds the package behind `mmseg::` with pkg_resources, which setuptools
# >= 81 no longer ships, and torch >= 2.6 refuses the checkpoints mmengine writes unless
# their types are allow-listed: mae_seg.compat.setup_openmmlab answers both (and quiets the
# output no user can act on), as our tools do first thing. `import mae_seg` alone only
# registers classes. The `custom_imports` below run only after every base has been read:
# too late for the look-up. A base is read before the next base is looked up, so this one,
# listed first, is in time.
# Rejected: a .pth start-up hook or a stand-in `pkg_resources` module would act on every
# program of the environment, and pinning setuptools < 81 would hold back a build tool for
# one look-up; this acts only where one of our configs is read.
# `__import__` rather than an import statement: mmengine takes a config that imports a
# non-standard module for a "lazy import" config, which cannot be a `_base_`.
__import__('mae_seg.compat').compat.setup_openmmlab()

custom_imports = dict(imports=['mae_seg'], allow_failed_imports=False)
