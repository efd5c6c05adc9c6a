"""Page helpers shared by the pages in app_pages/: the signed-in actor, navigation, import
previews, forms and the map builder. Like the pages, they draw and call services only."""
