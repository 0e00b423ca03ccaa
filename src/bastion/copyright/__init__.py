"""Protected works: a registry of texts and code the company must not reproduce, and the
matcher the copyright output guard uses to find copies of them in answers."""
