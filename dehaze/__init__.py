"""ssd-dehaze."""
