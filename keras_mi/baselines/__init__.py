"""keras_mi.baselines"""
