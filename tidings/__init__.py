"""The composition roots: the app factory, the `tidings` command and `python -m tidings`.

They sit above both `webapp` (pages, API, services, models) and `jobs` (actors, scheduler),
because only they put the two together (embedded workers, the scheduler command); so neither
package imports the other in a circle.
"""
