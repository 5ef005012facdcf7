"""fastreasonseg: fast reasoning segmentation over digital twins (after Shen & Unberath, CVPR 2026).

Pipeline stages are subpackages: ``twin`` (data type, text, tools) -> ``perception`` ->
``reasoning`` -> ``distill``; ``data`` makes synthetic scenes, ``metrics``/``eval`` score,
``cli`` is the one command-line entry point. Nothing heavy is imported here.
"""

__version__ = "0.1.0"
