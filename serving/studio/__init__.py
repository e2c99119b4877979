"""The web studio: a page that shows generated faces with their z, latent walks, face arithmetic and attribute
sliders, and the JSON API behind it, which calls the model server over gRPC (serving.client).

    dcgan studio --server 127.0.0.1:8500 [--model dcgan] [--label stable] [--model-base-path DIR] [--port 8080]

`serving.studio.app.create_app(StudioConfig(...))` builds the ASGI app from its routers (app.py's own endpoints,
specify.py, project.py), which share `serving.studio.dependencies`; `serving.studio.backend` holds the model calls
(cached, batched); `serving/studio/static/` is the page (vanilla HTML/CSS/JS, nothing from a CDN).
"""
