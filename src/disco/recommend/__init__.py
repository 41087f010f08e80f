"""The framework questionnaire and its recommendation (docs/recommend.md): the rules are data
(`frameworks/recommendations.yaml`), read by `rules.py`; `questions.py` parses answers;
`engine.py` turns them into a recommended cluster."""
