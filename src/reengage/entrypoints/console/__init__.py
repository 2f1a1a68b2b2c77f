"""The web console: server-rendered pages under /console for the people of an organization."""
