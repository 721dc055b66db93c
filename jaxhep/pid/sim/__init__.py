"""The simulated ALICE Run 3 sample: detector response (`response`) and Pb-Pb tracks (`simulate`)."""
