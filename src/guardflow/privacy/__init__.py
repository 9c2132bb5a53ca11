"""Differential privacy: the network, DP-SGD training, the budget rule and the membership audit."""
