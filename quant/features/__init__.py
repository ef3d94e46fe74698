"""Django-free feature core: causal indicators, versioned feature sets and labels."""
