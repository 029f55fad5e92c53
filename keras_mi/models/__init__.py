"""keras_mi.models"""
