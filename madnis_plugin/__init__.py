"""MadNIS plugin for MadGraph5_aMC@NLO: neural multi-channel importance sampling.

Layers (arrows point down only):
    mg5        → bridge      everything touching an MG5 process directory
    integrands → core        the Integrand protocol: toys, reference process, MG5 processes
    core                     pure PyTorch MadNIS; knows nothing of MG5
"""

__version__ = "0.1.0"
