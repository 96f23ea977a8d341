"""The deterministic sample street (示例街道): every layer gridmap stores, generated on the real OSM roads.

:func:`~gridmap.sample.street.generate_sample_street` is the entry point; the private modules each build one
part (block plan, building footprints, homes and residents, places, teams, the grid partition, past events).
No open source holds Xianlin's residents or grids, so they are generated from a fixed seed (data/README.md
says what is real and what is generated).
"""

from gridmap.sample.street import SampleStreet, generate_sample_street

__all__ = ["SampleStreet", "generate_sample_street"]
