"""Build cwrnn_ext: CPU kernels always, CUDA kernels when a CUDA torch and nvcc are present."""
import glob
import os
import sys

from setuptools import find_packages, setup

try:
    from torch.utils import cpp_extension
except ImportError:
    sys.exit("cwrnn_ext builds against the torch it will run with: install torch first, then build "
             "with `pip install --no-build-isolation ...` (README, Quick start)")

HERE = os.path.dirname(os.path.abspath(__file__))

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


def _cuda_buildable():
    """A CUDA-enabled torch plus an nvcc we can find (CUDA_HOME defaults to /usr/local/cuda)."""
    import torch

    if os.environ.get("CWRNN_FORCE_CPU", "0") == "1" or torch.version.cuda is None:
        return False
    os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
    cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]
    if not os.path.exists(os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")):
        return False
    if not torch.cuda.is_available():
        # Without a visible GPU torch cannot pick the arch list itself (the build would crash).
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    return True


def _extension():
    cpu_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # No -std flag: torch.utils.cpp_extension adds the standard its headers need (torch 2.14's
    # need C++20 and fail under -std=c++17).
    cxx_flags = ["-O3", "-fno-math-errno", "-fopenmp"]
    define_macros = list(LIMITED_API_MACROS)
    if _cuda_buildable():
        cuda_sources = sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cpp"))
        print(f"cwrnn_ext: building CPU + CUDA kernels ({len(cuda_sources)} CUDA sources, "
              f"TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', 'auto')})", file=sys.stderr)
        return cpp_extension.CUDAExtension(
            "cwrnn_ext._C",
            cpu_sources + cuda_sources,
            define_macros=define_macros + [("CWRNN_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
            extra_link_args=["-fopenmp"],
            py_limited_api=True,
        )
    if os.environ.get("CWRNN_REQUIRE_CUDA_BUILD", "0") == "1":
        sys.exit("cwrnn_ext: CWRNN_REQUIRE_CUDA_BUILD=1 but no CUDA torch or nvcc was found")
    print("cwrnn_ext: building CPU kernels only (no CUDA torch or nvcc found)", file=sys.stderr)
    return cpp_extension.CppExtension(
        "cwrnn_ext._C",
        cpu_sources,
        define_macros=define_macros,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )


setup(
    name="cwrnn_ext",
    version="0.1.0",
    description="Clockwork RNN (Koutnik et al., 2014) with kernels that compute only active modules",
    packages=find_packages(include=["cwrnn_ext", "cwrnn_ext.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    options={"bdist_wheel": {"py_limited_api": WHEEL_TAG}},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
)
