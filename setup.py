"""Build cwrnn_ext: CPU kernels always, CUDA kernels when a CUDA torch and nvcc are present."""
import glob
import os
import sys

from setuptools import find_packages, setup
from torch.utils import cpp_extension

HERE = os.path.dirname(os.path.abspath(__file__))


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
    define_macros = []  # cpp_extension defines Py_LIMITED_API itself for py_limited_api=True
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
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy"],
)
