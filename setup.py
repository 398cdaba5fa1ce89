"""Packaging of the MadNIS plugin for MG5_aMC (setuptools; `pip install .` and `pip install -e .`)."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py as _build_py

HERE = Path(__file__).parent


class build_py(_build_py):
    """Ship fortran_bridge/ (ABI header, reference process, MG5 shim) as madnis_plugin/fortran/ so a
    non-editable install can build the bridge libraries on demand."""

    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "madnis_plugin" / "fortran"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(HERE / "fortran_bridge", dest,
                        ignore=shutil.ignore_patterns("*.o", "*.mod", "*.so", "__pycache__"))

setup(
    name="madnis-plugin",
    version="0.1.0",
    description="Neural multi-channel importance sampling (MadNIS) inside MadGraph5_aMC@NLO",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["madnis_plugin", "madnis_plugin.*", "mg5_plugin_config", "mg5_plugin_config.*"]),
    cmdclass={"build_py": build_py},
    install_requires=[
        # torch: a range 2.13.0 satisfies, so an installed CPU wheel is kept (a bare `torch` can pull a CUDA build)
        "torch>=2.1,<2.15",
        "numpy>=1.24",
        "cffi>=1.15",
        "tqdm>=4.60",
        "tomli>=2.0; python_version<'3.11'",
    ],
    extras_require={
        "plots": ["matplotlib>=3.6"],
        "test": ["pytest>=7", "pylhe>=0.7", "matplotlib>=3.6"],
        "bench": ["madnis==1.0.*", "vegas>=6", "matplotlib>=3.6"],
    },
    entry_points={"console_scripts": ["madnis-mg5=madnis_plugin.cli:main"]},
)
