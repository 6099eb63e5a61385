"""Loss-landscape analysis: the adversarial loss as a function of the weights, its Hessian,
surfaces, interpolation sweeps, Lipschitz estimates and perturbation-location overlap."""
