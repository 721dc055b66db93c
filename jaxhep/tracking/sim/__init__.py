"""Simulated TrackML events: detector, transport (`propagate`), hits (`digitize`), events (`simulate`)."""
