"""Real sky targets (J2000/ICRS degrees) the simulated missions point at."""

from __future__ import annotations

#: name -> (RA deg, Dec deg). Coordinates are the usual catalogue positions, rounded.
TARGETS: dict[str, tuple[float, float]] = {
    "NGC 253": (11.8881, -25.2883),
    "M31": (10.6847, 41.2688),
    "Crab": (83.6331, 22.0145),
    "Cas A": (350.8500, 58.8150),
    "3C 273": (187.2779, 2.0524),
    "Sgr A*": (266.4168, -29.0078),
    "M87": (187.7059, 12.3911),
    "Cen A": (201.3651, -43.0191),
    "Vela Pulsar": (128.8359, -45.1764),
    "Eta Carinae": (161.2648, -59.6844),
    "SN 1987A": (83.8667, -69.2697),
    "Perseus Cluster": (49.9507, 41.5117),
    "Cyg X-1": (299.5903, 35.2016),
    "Tycho SNR": (6.3400, 64.1300),
    "Kepler SNR": (262.6708, -21.4869),
    "Mrk 421": (166.1138, 38.2088),
    "Coma Cluster": (194.9531, 27.9807),
    "M42": (83.8221, -5.3911),
    "M45": (56.7500, 24.1167),
    "M51": (202.4696, 47.1952),
    "M101": (210.8023, 54.3490),
    "M82": (148.9697, 69.6797),
    "NGC 1068": (40.6696, -0.0133),
    "NGC 891": (35.6392, 42.3491),
    "Omega Centauri": (201.6970, -47.4795),
    "M13": (250.4235, 36.4613),
    "LMC": (80.8938, -69.7561),
    "Proxima Centauri": (217.4289, -62.6795),
}

XRAY = ("NGC 253", "Crab", "Cas A", "3C 273", "Sgr A*", "M87", "Cen A", "Vela Pulsar",
        "Eta Carinae", "SN 1987A", "Perseus Cluster", "Cyg X-1", "Tycho SNR", "Kepler SNR",
        "Mrk 421", "M31", "Coma Cluster")
OPTICAL = ("M31", "NGC 253", "M42", "M45", "M51", "M101", "M82", "M87", "NGC 1068", "NGC 891",
           "Omega Centauri", "M13", "Crab", "3C 273")
IMAGING = ("NGC 253", "M31", "LMC", "M42", "Omega Centauri", "M51", "Coma Cluster", "Cas A")
SPECTRO = ("3C 273", "Eta Carinae", "Proxima Centauri", "Crab", "NGC 1068", "M87", "Sgr A*")
