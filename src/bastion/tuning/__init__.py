"""Fine-tuning: datasets built from feedback and files, masked, deduplicated and split."""
