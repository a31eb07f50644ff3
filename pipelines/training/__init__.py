"""Training, one job per module; `pipelines.train` is the command that runs them.

- `cache`: features and reference tables per cutoff, computed once and shared by the models;
- `outcome`: churn and propensity (binary outcomes): labels, training sets, fit, baselines, metrics;
- `recommender`: the two-stage recommender fitted on rolling label windows and its baselines;
- `gate`: promotion by evidence (the decision, and the champion re-measured on the same window);
- `tracking`: what a trained model logs to MLflow (through `pipelines.registry`);
- `provenance`: the data fingerprint, git commit and flattened config every run is tagged with.
"""
