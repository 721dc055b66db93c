"""The simulated DUNE supernova sample: argon, neutrinos, transport, readout, events, scattering floor."""
