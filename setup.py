"""Build cwrnn_ext: the CPU kernels always; the CUDA kernels when a GPU is visible or when asked.

Which kernels (read at build time):
    CWRNN_BUILD_CUDA=1      build the CUDA kernels too, and fail if they cannot be built
                            (CWRNN_REQUIRE_CUDA_BUILD=1, which CI sets, means the same)
    CWRNN_BUILD_CUDA=0      CPU kernels only (CWRNN_FORCE_CPU=1 means the same)
    unset (or "auto")       the CUDA kernels too when torch sees a GPU and nvcc is found
                            (CUDA_HOME defaults to /usr/local/cuda); CPU kernels only otherwise
The CUDA kernels take far longer to compile than the CPU ones (about 25 minutes against 2 on a
shared 2-core machine), which is why a machine without a GPU skips them unless asked.

The build says which it made: the distribution's version carries it as a local label
(cwrnn_ext-0.1.0+cpu or +cuda, in pip's "Successfully installed" line), and a line on the
terminal (pip shows nothing else of a build's output without -v).

Objects are kept in build/<variant>-<python>-<environment>/ (ignored by git), also for `pip install -e .`,
which would otherwise compile in a fresh temporary folder every time: ninja recompiles only what
changed, so a second install with nothing changed only links.
"""
import glob
import hashlib
import os
import sys

from setuptools import find_packages, setup

try:
    from torch.utils import cpp_extension
except ImportError:
    sys.exit("cwrnn_ext builds against the torch it will run with: install torch first, then build "
             "with `pip install --no-build-isolation ...` (README, Quick start)")

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"

# The extension touches CPython only through PyModule_Create (csrc/ops.cpp), which is in the
# stable ABI, so one build serves every Python from LIMITED_API_VERSION on (abi3). Newer torch
# (2.8, 2.11, 2.13, 2.14 checked) defines Py_LIMITED_API itself for py_limited_api=True, to the
# cpp_extension.min_supported_cpython it exposes (3.10); older torch (2.4 to 2.6) does neither,
# so we define it, for 3.9. csrc/ops.cpp refuses to compile without it: the abi3 file name and
# wheel tag cannot claim more than the build did.
TORCH_LIMITED_API = getattr(cpp_extension, "min_supported_cpython", None)
LIMITED_API_VERSION = int(TORCH_LIMITED_API or "0x03090000", 16)
LIMITED_API_MACROS = [] if TORCH_LIMITED_API else [("Py_LIMITED_API", f"0x{LIMITED_API_VERSION:08X}")]
WHEEL_TAG = f"cp{LIMITED_API_VERSION >> 24}{(LIMITED_API_VERSION >> 16) & 0xFF}"  # e.g. cp39, cp310


def _flag(name):
    value = os.environ.get(name, "")
    if value not in ("", "0", "1"):
        sys.exit(f"cwrnn_ext: {name} must be 0 or 1, got {value!r}")
    return value


def _cuda_request():
    """'yes', 'no' or 'auto' from CWRNN_BUILD_CUDA and its two older spellings."""
    build = os.environ.get("CWRNN_BUILD_CUDA", "auto") or "auto"
    if build not in ("auto", "0", "1"):
        sys.exit(f"cwrnn_ext: CWRNN_BUILD_CUDA must be 1, 0 or auto, got {build!r}")
    wants = build == "1" or _flag("CWRNN_REQUIRE_CUDA_BUILD") == "1"
    refuses = build == "0" or _flag("CWRNN_FORCE_CPU") == "1"
    if wants and refuses:
        sys.exit("cwrnn_ext: the environment asks both for the CUDA kernels (CWRNN_BUILD_CUDA=1 or "
                 "CWRNN_REQUIRE_CUDA_BUILD=1) and against them (CWRNN_BUILD_CUDA=0 or CWRNN_FORCE_CPU=1)")
    return "yes" if wants else "no" if refuses else "auto"


def _cuda_missing():
    """Why the CUDA kernels cannot be built here, or None if they can."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
    cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]
    nvcc = os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
    if not os.path.exists(nvcc):
        return f"nvcc not found at {nvcc} (set CUDA_HOME)"
    return None


def _variant():
    """('cuda' or 'cpu', why), or exits when the CUDA kernels were asked for and cannot be built."""
    import torch

    request = _cuda_request()
    if request == "no":
        return "cpu", "CWRNN_BUILD_CUDA=0 or CWRNN_FORCE_CPU=1"
    missing = _cuda_missing()
    if request == "yes":
        if missing:
            sys.exit(f"cwrnn_ext: the CUDA kernels were asked for (CWRNN_BUILD_CUDA=1 or "
                     f"CWRNN_REQUIRE_CUDA_BUILD=1) but cannot be built: {missing}")
        if not torch.cuda.is_available():
            # Without a visible GPU torch cannot pick the arch list itself (the build would crash).
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        return "cuda", "asked for"
    if not torch.cuda.is_available():
        return "cpu", "no GPU visible; CWRNN_BUILD_CUDA=1 builds the CUDA kernels too (about 25 min)"
    if missing:
        return "cpu", f"a GPU is visible but {missing}"
    return "cuda", "a GPU is visible"


def _tell(message):
    """To stderr (pip -v, setup.py) and, when there is one, the terminal: pip shows nothing else
    of a build's output unless it fails."""
    print(message, file=sys.stderr, flush=True)
    try:
        with open("/dev/tty", "w") as terminal:
            terminal.write(f"\n{message}\n")
    except OSError:
        pass  # no terminal (CI, cron): pip's "Successfully installed cwrnn_ext-...+cpu" says it


VARIANT, WHY = _variant()


def _extension():
    cpu_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/generic/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # No -std flag: torch.utils.cpp_extension adds the standard its headers need (torch 2.14's
    # need C++20 and fail under -std=c++17).
    cxx_flags = ["-O3", "-fno-math-errno", "-fopenmp"]
    define_macros = list(LIMITED_API_MACROS)
    if VARIANT == "cuda":
        cuda_sources = sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cpp"))
        return cpp_extension.CUDAExtension(
            "cwrnn_ext._C",
            cpu_sources + cuda_sources,
            define_macros=define_macros + [("CWRNN_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
            extra_link_args=["-fopenmp"],
            py_limited_api=True,
        )
    return cpp_extension.CppExtension(
        "cwrnn_ext._C",
        cpu_sources,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )


class BuildExtension(cpp_extension.BuildExtension):
    """torch's build_ext, with its objects in a folder that outlives the build and a line that
    says which kernels it builds."""

    def finalize_options(self):
        super().finalize_options()
        # pip's editable install points build_temp at a fresh temporary folder. One folder per
        # variant and environment: the compile commands name the environment's include folder,
        # and ninja recompiles everything whose command changed, so a CPU and a CUDA build, or a
        # venv and the system Python, would otherwise recompile each other's objects.
        environment = hashlib.sha1(sys.prefix.encode()).hexdigest()[:8]
        python = f"py{sys.version_info[0]}{sys.version_info[1]}"
        self.build_temp = os.path.join(HERE, "build", f"{VARIANT}-{python}-{environment}")

    def run(self):
        if VARIANT == "cuda":
            _tell(f"cwrnn_ext: building the CPU and CUDA kernels ({WHY}; TORCH_CUDA_ARCH_LIST="
                  f"{os.environ.get('TORCH_CUDA_ARCH_LIST', 'auto')}); the CUDA ones take a while")
        else:
            _tell(f"cwrnn_ext: building the CPU kernels only ({WHY})")
        super().run()


setup(
    name="cwrnn_ext",
    version=f"{VERSION}+{VARIANT}",
    description="Clockwork RNN (Koutnik et al., 2014) with kernels that compute only active modules",
    packages=find_packages(include=["cwrnn_ext", "cwrnn_ext.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": WHEEL_TAG}},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
)
