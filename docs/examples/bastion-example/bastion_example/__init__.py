"""Example Bastion plug-ins: each module registers one part through a hook."""
