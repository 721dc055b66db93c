"""The simulated ML4SCI sample: tracker (`tracker`), GFlash showers (`gflash`) and ECAL crops (`simulate`)."""
