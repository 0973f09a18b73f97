"""One module per paper artefact (Fig. 4 spectrum, Fig. 5 convergence, Tables 1/4 ablation): pure maths over the
stages' outputs."""
