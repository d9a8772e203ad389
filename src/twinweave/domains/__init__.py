"""Domain twins: wind (turbines, farms); more domains follow."""
