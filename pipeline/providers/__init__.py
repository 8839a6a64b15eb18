"""Image providers: one module per backend, each implementing ``pipeline.jobs.Provider``."""
