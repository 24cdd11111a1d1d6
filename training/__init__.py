"""antiphon.training: offline work: read music, prepare token arrays, train, calibrate, evaluate, fit
ensembles, write style files. Imports antiphon.engine only."""
