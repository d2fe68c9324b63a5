"""The leak report: findings and advice as text, HTML and JSON, and the webhook."""
