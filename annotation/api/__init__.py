"""The annotation app's REST API: projects, labels and questions, media, tasks. One view class per
resource path with its methods; writes go through the services, reads through the selectors."""
