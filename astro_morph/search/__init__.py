"""Architecture search: ENAS for the baseline (``astromorph search``) and the compound-scaling
grid search (``astromorph scale``). The search space is made of the same ``MBConvConfig``
stages the model builder uses, so a found genotype is an ordinary ``ArchConfig``."""
