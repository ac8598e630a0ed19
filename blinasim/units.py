"""Unit conversions used at the edges of the model."""
AVOGADRO_PER_MOL = 6.02214076e23
UM3_PER_UL = 1e9
LITRES_PER_UM3 = 1e-15


def pg_per_ml_to_molar(conc_pg_per_ml: float, molar_mass_kda: float) -> float:
    """pg/mL -> mol/L: 1 pg/mL = 1e-9 g/L; divided by g/mol (kDa * 1000)."""
    return conc_pg_per_ml * 1e-9 / (molar_mass_kda * 1e3)


def kd_2d_per_um2(kd_molar: float, confinement_length_nm: float) -> float:
    """A 3D dissociation constant as a 2D one for an arm confined near a membrane.

    K2D [molecules/um2] = KD [mol/L] * NA * 1e-15 [L/um3] * confinement length [um].
    """
    return kd_molar * AVOGADRO_PER_MOL * LITRES_PER_UM3 * confinement_length_nm * 1e-3


def occupancy(conc_molar: float, kd_molar: float) -> float:
    """Equilibrium fraction of receptors bound by a monovalent ligand: C / (C + KD)."""
    return conc_molar / (conc_molar + kd_molar) if conc_molar > 0.0 else 0.0
