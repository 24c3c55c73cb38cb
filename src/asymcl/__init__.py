"""asymcl: asymmetric (focal) contrastive learning for imbalanced data.

Reproduces and extends Vito & Stefanus, "An Asymmetric Contrastive Loss for Handling
Imbalanced Datasets" (Entropy 24(9):1303, 2022).
"""

__version__ = "0.1.0"
