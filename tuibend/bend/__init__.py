"""Network bending: transforms on the decoder's activations, unit selection, chains, automation, scenes.

Bends are data (``Bend``, ``Scene``) plus graph operations (``BendRig.hook``) handed to the model;
they hold no threads and never import the engine.
"""
