"""PII: masks personal data in prompts (reversibly, per request) and in leaked answers."""
