"""keras_mi.attacks"""
