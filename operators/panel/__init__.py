"""The panel: independent correct implementations of every operator judged by the same verdict over
several seeds (their false-alarm rate), beside the kernels under test and the planted wrong kernels
(their catch rate). `python -m operators.panel`."""
